using Microsoft.AspNetCore.Http;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// The request body bytes the proxy received from the client for one request, however they moved (copied, spliced,
/// read by YARP's forwarder): the body part of the access log's <c>$request_length</c>. Set as a request feature at the
/// first body byte, so a request without a body allocates none.
/// </summary>
internal sealed class RequestBodyCount
{
    public long Received { get; private set; }

    public void Add(long bytes) => Received += bytes;

    /// <summary>The request's count, made on first use.</summary>
    public static RequestBodyCount Of(HttpContext context)
    {
        var count = context.Features.Get<RequestBodyCount>();
        if (count is null)
        {
            count = new RequestBodyCount();
            context.Features.Set(count);
        }
        return count;
    }
}
