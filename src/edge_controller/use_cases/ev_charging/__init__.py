"""EV charging: `EV_CHARGING` dispatches held on the site's EV chargers.

A dispatch asks for power per charger or a budget shared by the cars plugged in
(`payload`); `decide` turns it and what each charger can take now into power per
charger, taken again whenever a car arrives or leaves.
"""
