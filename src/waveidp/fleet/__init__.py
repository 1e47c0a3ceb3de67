"""waveidp.fleet"""
