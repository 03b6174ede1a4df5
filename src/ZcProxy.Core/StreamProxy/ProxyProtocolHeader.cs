using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// The PROXY protocol header (HAProxy's spec, proxy-protocol.txt) that tells the upstream who the client is: the
/// client's address and port as source, the address and port the client connected to as destination. v1 is one text
/// line, v2 a binary block; an IPv4 client of a dual-stack listener is sent as IPv4 (TCP4 / AF_INET).
/// </summary>
internal static class ProxyProtocolHeader
{
    private static readonly byte[] V2Signature = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
    private const byte V2ProxyCommand = 0x21;   // version 2, PROXY
    private const byte V2TcpOverIPv4 = 0x11;
    private const byte V2TcpOverIPv6 = 0x21;
    private const byte V2Unspecified = 0x00;

    /// <summary>The header for <paramref name="client"/> connected to <paramref name="local"/>; empty when off.</summary>
    public static byte[] Build(ProxyProtocolVersion version, IPEndPoint? client, IPEndPoint? local) => version switch
    {
        ProxyProtocolVersion.V1 => V1(client, local),
        ProxyProtocolVersion.V2 => V2(client, local),
        _ => [],
    };

    public static byte[] V1(IPEndPoint? client, IPEndPoint? local)
    {
        if (!TryPair(client, local, out var source, out var destination)) return Encoding.ASCII.GetBytes("PROXY UNKNOWN\r\n");
        var family = source.AddressFamily == AddressFamily.InterNetwork ? "TCP4" : "TCP6";
        return Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"PROXY {family} {source.Address} {destination.Address} {source.Port} {destination.Port}\r\n"));
    }

    public static byte[] V2(IPEndPoint? client, IPEndPoint? local)
    {
        if (!TryPair(client, local, out var source, out var destination))
        {
            var unknown = new byte[16];
            V2Signature.CopyTo(unknown, 0);
            unknown[12] = V2ProxyCommand;
            unknown[13] = V2Unspecified; // length 0: the receiver uses the connection's own addresses
            return unknown;
        }
        bool v4 = source.AddressFamily == AddressFamily.InterNetwork;
        int addressLength = v4 ? 4 : 16;
        int length = 2 * addressLength + 4;
        var header = new byte[16 + length];
        V2Signature.CopyTo(header, 0);
        header[12] = V2ProxyCommand;
        header[13] = v4 ? V2TcpOverIPv4 : V2TcpOverIPv6;
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(14), (ushort)length);
        source.Address.TryWriteBytes(header.AsSpan(16, addressLength), out _);
        destination.Address.TryWriteBytes(header.AsSpan(16 + addressLength, addressLength), out _);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(16 + 2 * addressLength), (ushort)source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(18 + 2 * addressLength), (ushort)destination.Port);
        return header;
    }

    /// <summary>Both addresses in one family (IPv4-mapped IPv6 addresses as IPv4); false when unknown or mixed.</summary>
    private static bool TryPair(IPEndPoint? client, IPEndPoint? local, out IPEndPoint source, out IPEndPoint destination)
    {
        source = destination = null!;
        if (client is null || local is null) return false;
        source = Unmapped(client);
        destination = Unmapped(local);
        return source.AddressFamily == destination.AddressFamily;
    }

    private static IPEndPoint Unmapped(IPEndPoint endPoint)
        => endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port) : endPoint;
}
