"""fusioncast: batch forecasting of time series from numbers and text.

statsforecast (the statistical baselines) requires pandas < 3, so the project runs on pandas 2.3
switched to the two behaviours of pandas 3 it is written for: the ``str`` dtype (missing stays
missing, never the text "None") and copy-on-write.
"""

import pandas as _pd

_pd.set_option("future.infer_string", True)
_pd.set_option("mode.copy_on_write", True)
