"""waveidp.sizing"""
