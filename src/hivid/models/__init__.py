"""hivid.models"""
