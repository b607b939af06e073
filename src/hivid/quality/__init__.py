"""hivid.quality"""
