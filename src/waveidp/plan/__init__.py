"""waveidp.plan"""
