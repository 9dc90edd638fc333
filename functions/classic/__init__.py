"""The classic Service Management XML API over the catalog, for unmodified classic clients.

Routes (no `api/` prefix: host.json's routePrefix is ""), all at function
auth level; the function key (`x-functions-key` or `?code=`) is the classic
client's credential, where Azure used a management certificate:

    GET    /{subscriptionId}/services/images               List OS Images
    POST   /{subscriptionId}/services/images               Add OS Image
    GET    /{subscriptionId}/services/images/{name}        Get OS Image
    PUT    /{subscriptionId}/services/images/{name}        Update OS Image
    DELETE /{subscriptionId}/services/images/{name}        Delete OS Image (?comp=media: + VHD)
    GET    /{subscriptionId}/services/vmimages             List VM Images (?location, publisher,
                                                           category)
    DELETE /{subscriptionId}/services/vmimages/{name}      Delete VM Image (?comp=media)
    GET    /{subscriptionId}/operations/{requestId}        Get Operation Status
    POST   /{subscriptionId}/services/hostedservices/{svc}/deployments/{dep}
               /roleinstances/{role}/Operations            Capture Role (PostCaptureAction=Delete)
                                                           and Capture VM Image (queued; 202)

Every answer carries `x-ms-request-id`. Add, Update and Delete complete before
they answer and record an operation under that id (Succeeded, or Failed with
the error), so Get Operation Status works on it. Errors are
`<Error><Code/><Message/></Error>` with Azure's classic codes: 400 BadRequest,
403 ForbiddenError (a platform image can't be changed or deleted), 404
ResourceNotFound, 409 ConflictError; a missing, malformed or too old
`x-ms-version` is 400 MissingOrIncorrectVersionHeader. The one subscription
served is the app setting CLASSIC_SUBSCRIPTION_ID; any other is answered
403 ForbiddenError, as Azure answers a subscription the credential is not
associated with (it says nothing about whether that subscription exists).

Deviations from Azure: Add and Update answer 200 with the image, Delete OS
Image 200 and Delete VM Image 202, all already complete; MediaLink must be a
blob in the catalog's own storage account; Update cannot change
PublishedDate or the icon/privacy URIs (the catalog keeps them), only repeat
them; Language is accepted and not kept; AffinityGroup, IOType and the
capture source (ServiceName, DeploymentName, RoleName) are never sent. There
is no Get VM Image in the classic API, so none here. A request that matches
no route, or a missing key, gets the host's empty 404 or 401.
"""

# One module per classic resource; importing them registers their routes on `bp`.
from functions.classic import captures, certificates, images, operations, vm_images
from functions.classic.common import bp

__all__ = ["bp", "captures", "certificates", "images", "operations", "vm_images"]
