"""hivid.data"""
