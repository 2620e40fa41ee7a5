"""seedvault"""
