"""hivid.evaluation"""
