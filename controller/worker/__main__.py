from controller.worker.process import main

raise SystemExit(main())
