using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Output;

/// <summary>
/// A wrapper of the response body feature that may need to see a body's bytes or hold them back: the cache's fill
/// tee, the retry gate. Copied bytes pass through it; a kernel move would go past it. So before moving a body in
/// the kernel, <see cref="ResponseBodySender"/> walks the chain of body features down to Kestrel's own and asks each
/// wrapper; any wrapper that is not an observer gets copies, to be safe.
/// </summary>
internal interface IResponseBodyObserver
{
    /// <summary>The feature this one wraps.</summary>
    IHttpResponseBodyFeature Inner { get; }

    /// <summary>Whether this response's body bytes must pass through the wrapper; asked once the status and headers are final, before any body byte moves.</summary>
    bool NeedsBytes { get; }
}
