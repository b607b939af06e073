"""hivid.annotate"""
