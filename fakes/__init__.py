"""Local fakes of the platforms the bot talks to, on 127.0.0.1: the Telegram Bot API, the VK API
(with its long poll and Callback delivery) and a throwaway PostgreSQL server. The tests and the
load suite (`python -m bench.load`) both use them; nothing here talks to the internet."""
