"""waveidp.catalog"""
