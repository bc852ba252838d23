from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt


def hello(request):
    return JsonResponse(
        {
            "hello": "django",
            "script_name": request.META["SCRIPT_NAME"],
            "path_info": request.path_info,
            "path": request.path,
            "reverse": reverse("hello"),
        }
    )


@csrf_exempt
def publish(request):
    from mount_django_app import app  # the blaze_green app this Django project is mounted in

    n = app.broadcast("/feed", {"from": "django", "item": request.POST["item"]})
    return JsonResponse({"delivered": n})
