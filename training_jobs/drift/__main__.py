from training_jobs.drift.job import main

raise SystemExit(main())
