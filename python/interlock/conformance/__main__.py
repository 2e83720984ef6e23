"""``python -m interlock.conformance``: see :mod:`interlock.conformance`."""

from interlock.conformance import main

raise SystemExit(main())
