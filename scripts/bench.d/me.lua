-- GET /v1/auth/me with a bearer token: local validation and a revocation check.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
