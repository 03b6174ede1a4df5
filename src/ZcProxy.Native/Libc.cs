using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>
/// The libc entry points Tmds.LibC (the binding layer, <c>Tmds.Linux.LibC</c>) does not have; each says why.
/// Callers outside this assembly use the checked wrappers (<see cref="Syscalls"/>), which retry EINTR and turn
/// errno into <see cref="SysResult"/> or <see cref="ErrnoException"/>.
/// </summary>
internal static unsafe partial class Libc
{
    /// <summary>Tmds.LibC 0.5.0 has no sendfile(2). off_t is 64-bit on every 64-bit Linux, so one declaration fits x64 and arm64.</summary>
    [LibraryImport("libc", SetLastError = true)]
    internal static partial nint sendfile(int outFd, int inFd, long* offset, nuint count);
}
