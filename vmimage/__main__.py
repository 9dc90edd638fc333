from vmimage.cli import main

raise SystemExit(main())
