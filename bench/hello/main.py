"""The smallest functions-framework function: the cold-start yardstick for `make bench`."""

import functions_framework


@functions_framework.http
def hello(request):
    return "ok"
