"""hivid.training"""
