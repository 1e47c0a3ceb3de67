"""waveidp.render"""
