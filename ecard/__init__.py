"""ecard: electronic social security cards issued after blink liveness and ID-photo matching.

Importing this package is cheap: models, keys and the database load only when asked.
"""

__version__ = "0.1.0"
