"""Front-ends for clients that do not speak the hosted API: the OpenAI Images API (`/v1/...`: Open WebUI,
LibreChat) and the AUTOMATIC1111 API (`/sdapi/v1/...`: SillyTavern, Open WebUI, chat bots). Thin
adapters: each request is translated into the hosted API's fields, validated by the same serializers and
run by the same services and workers, so it costs what the same v6 request costs and shows in the
history, the usage and the admin."""
