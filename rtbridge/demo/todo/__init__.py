"""The demo's todo app: lists and items that publish themselves, routers, presence rules."""
