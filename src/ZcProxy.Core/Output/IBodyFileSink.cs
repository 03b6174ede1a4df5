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

    /// <summary>
    /// Asked once, before the first byte: non-null when this sink writes with O_DIRECT from aligned buffers (a large
    /// cache fill), so the teed bytes are read out of the pipe into its buffers (the kernel does not splice into an
    /// O_DIRECT file) instead of spliced; every byte then goes through it, the head's prefix too.
    /// </summary>
    IDirectFileSink? Direct { get; }
}

/// <summary>A file sink that writes with O_DIRECT from aligned buffers; its writes run on the thread pool, never on an event loop.</summary>
internal interface IDirectFileSink
{
    /// <summary>
    /// Room in the buffer being filled (at least one byte), after waiting for a write when every buffer is full; empty
    /// when the sink gave up (a write failed, or <paramref name="count"/> more bytes would pass its size limit).
    /// </summary>
    ValueTask<Memory<byte>> SpaceAsync(long count);

    /// <summary><paramref name="bytes"/> were put at the start of the room <see cref="SpaceAsync"/> gave.</summary>
    void Filled(int bytes);

    /// <summary>The body is complete: writes what is buffered and waits for every write; false when one failed (the sink gave up).</summary>
    ValueTask<bool> FlushAsync();
}

/// <summary>A teeing kernel move's second pipe (the client's copy of the bytes) and the file the original goes to.</summary>
internal sealed record FileTee(SplicePipe Pipe, IBodyFileSink Sink);
