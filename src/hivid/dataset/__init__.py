"""hivid.dataset"""
