"""The application layer: the use cases every entry point calls.

D-Bus methods (and `borgctl apply`, through D-Bus) reach the same use cases;
each validates all of its arguments before it changes anything, changes the
store, and tells the parts that follow it (the scheduler re-plans, the
executor wakes).  The scheduler only plans and fires, the executor only runs
lanes and processes, the D-Bus adapter only translates.
"""
