using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Output;

/// <summary>
/// A wrapper of the response body feature that may need to see a body's bytes or hold them back: the cache's fill
/// tee, the retry gate. Copied bytes pass through it; a kernel move would go past it. So before moving a body in
/// the kernel, <see cref="ResponseBodySender"/> walks the chain of body features down to Kestrel's own and asks each
/// wrapper; any wrapper that is not an observer gets copies, to be safe. A wrapper that only stores the bytes in a
/// file offers that file (<see cref="FileSink"/>), and a splice then tees into it.
/// </summary>
internal interface IResponseBodyObserver
{
    /// <summary>The feature this one wraps.</summary>
    IHttpResponseBodyFeature Inner { get; }

    /// <summary>Whether this response's body bytes must pass through the wrapper; asked once the status and headers are final, before any body byte moves.</summary>
    bool NeedsBytes { get; }

    /// <summary>
    /// When the bytes are needed only to be written to a file (a cache fill): that file, so that a spliced body can be
    /// teed into it in the kernel instead of being copied through the wrapper. Null: the bytes must pass through.
    /// </summary>
    IBodyFileSink? FileSink => null;
}
