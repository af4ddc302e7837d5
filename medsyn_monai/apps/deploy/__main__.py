"""``python -m medsyn_monai.apps.deploy -m <models folder> -o <output folder> [options]``."""

from medsyn_monai.apps.deploy.app import main

if __name__ == "__main__":
    main()
