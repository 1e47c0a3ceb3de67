"""waveidp.engines"""
