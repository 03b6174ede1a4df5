using System.Diagnostics.CodeAnalysis;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Output;

/// <summary>
/// A file a response body is also written to on its way to the client (a cache fill). A copied body passes through
/// its observer, which writes the bytes; a spliced one is teed into this file in the kernel (tee(2) into a second
/// pipe for the client, splice(2) of the original into the file), and the sink is told what the kernel wrote. The
/// client's response never depends on the file: a sink that fails gives up its file and the body goes on.
/// </summary>
internal interface IBodyFileSink
{
    /// <summary>
    /// The file and offset for the next <paramref name="count"/> body bytes; false when the sink cannot take them: it
    /// gave up earlier, or they would pass its size limit (then it gives up now).
    /// </summary>
    bool TryTake(long count, [NotNullWhen(true)] out SafeFileHandle? file, out long offset);

    /// <summary>Bytes that were in user space anyway (the head's recv took them along): written as a copied fill writes them.</summary>
    void Write(ReadOnlySpan<byte> data);

    /// <summary>The kernel wrote <paramref name="bytes"/> at the offset <see cref="TryTake"/> gave (and on).</summary>
    void Spliced(long bytes);

    /// <summary>The kernel refused to write (ENOSPC, EDQUOT, EIO...): the sink gives up its file.</summary>
    void SpliceFailed(int errno);
}

/// <summary>A teeing kernel move's second pipe (the client's copy of the bytes) and the file the original goes to.</summary>
internal sealed record FileTee(SplicePipe Pipe, IBodyFileSink Sink);
