using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace ZcProxy.Native;

/// <summary>An owned fd that libc's close() releases (pipes, epoll and eventfd instances).</summary>
internal sealed class FileDescriptor : SafeHandleZeroOrMinusOneIsInvalid
{
    public FileDescriptor(int fd) : base(ownsHandle: true) => SetHandle(fd);

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
