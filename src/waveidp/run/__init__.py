"""waveidp.run"""
