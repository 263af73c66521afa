-- When the next poll of a device code is due (GCRA): polls are judged "too fast" over time, so one
-- early poll after a slow answer is not punished with slow_down.
ALTER TABLE device_requests ADD COLUMN next_poll_at INTEGER;
