using System.Net;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// Stands in for a body in the HttpRequestMessage/HttpResponseMessage handed to YARP's transforms, so content
/// headers (Content-Length, Content-Type...) have a place to live. The bytes never pass through it.
/// </summary>
internal sealed class HeaderOnlyContent : HttpContent
{
    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        => throw new NotSupportedException("the zero-copy forwarder moves bodies itself");

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
