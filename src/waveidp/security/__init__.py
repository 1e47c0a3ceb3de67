"""waveidp.security"""
