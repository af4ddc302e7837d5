"""pytest set-up of the whole repository: the modules and tests of an optional extra are collected only where that
extra is installed. The CI installs each extra in a step of its own and runs its tests there (they are never
skipped: without the extra they are not collected, with it they must pass)."""

import importlib.util

collect_ignore: list[str] = []
if importlib.util.find_spec("monai.deploy") is None:  # extra [deploy]: MONAI Deploy App SDK
    collect_ignore += ["medsyn_monai/apps/deploy/app.py", "medsyn_monai/apps/deploy/__main__.py",
                       "tests/apps/deploy/test_app.py"]  # fmt: skip
if importlib.util.find_spec("monailabel") is None:  # MONAI Label's own environment (requirements-label.txt)
    collect_ignore += ["medsyn_monai/apps/label/app", "tests/apps/label/test_label_app.py"]
