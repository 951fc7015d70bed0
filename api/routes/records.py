"""Placeholder: filled in by issue 6 work."""

from aiohttp import web

routes = web.RouteTableDef()
