"""Operations endpoints: health, readiness, GET /metrics.

The metric definitions are the base module `proxy.metrics`, which every package imports. The old path
`proxy.ops.metrics` stays importable as an alias of it while branches written before the move land;
new code imports `proxy.metrics` (tests/test_layout.py holds that for proxy/).
"""

import sys

from proxy import metrics

sys.modules[f"{__name__}.metrics"] = metrics
