"""waveidp.bench"""
