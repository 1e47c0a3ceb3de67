"""waveidp.gateway"""
