"""hivid.tracking"""
