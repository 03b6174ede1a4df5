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
