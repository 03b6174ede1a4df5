using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>struct iovec: same layout on every 64-bit Linux.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoVec
{
    public void* Base;
    public nuint Length;
}

/// <summary>struct msghdr (64-bit Linux): the int fields are padded to 8 bytes by natural alignment.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary>
/// One buffer of a gathered write, by address: for memory that is pinned for its whole life (arrays on the
/// pinned object heap), so a send needs no per-call pinning. Same layout as struct iovec.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct IoSegment
{
    public IoSegment(nint address, int length)
    {
        Address = address;
        Length = (nuint)length;
    }

    public nint Address { get; }
    public nuint Length { get; }
}
