using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;

namespace ZcProxy.Core.Transport;

/// <summary>Where the bytes of a body "hole" come from: the writer moves them in the kernel, never through user space.</summary>
internal abstract record HoleSource;

/// <summary>A file range, sent with sendfile(2).</summary>
internal sealed record FileHoleSource(SafeFileHandle File, long Offset) : HoleSource;

/// <summary>An upstream socket whose next bytes are the body, spliced socket → pipe → client;
/// each wait for either side is bounded by <paramref name="IdleTimeout"/> (Infinite: unbounded).</summary>
internal sealed record SocketHoleSource(Socket Socket, TimeSpan IdleTimeout) : HoleSource;

/// <summary>A file range opened with O_DIRECT: read into aligned buffers (no page cache) and sent from them with send(2).</summary>
internal sealed record DirectFileHoleSource(SafeFileHandle File, long Offset) : HoleSource;
