"""`wardgate migrate`: ingress-nginx Ingresses (and their controllers' ConfigMaps) to Gateway API
resources plus wardgate policies, with a report that accounts for every annotation and snippet line.

A stage between the model and translate: it reads raw objects from `wardgate.sources` and writes
Gateway API / wardgate objects that the model validates; the normal pipeline then runs them.
"""
