# Locust user for bench/scenarios/open-loop.ts: GET one path (LOCUST_PATH) as fast as Locust can,
# no think time, so its request rate is the most this Locust process can generate.
import os

from locust import HttpUser, constant, task


class Fetch(HttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get(os.environ.get("LOCUST_PATH", "/"))
