using System.Text;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>
/// The strings of the previous request parsed into the same request object (pooled per loop thread), reused when the
/// bytes are the same: a client's Host, User-Agent, Accept and target rarely change from one request to the next (Kestrel
/// keeps the previous values per connection for the same reason), so a repeated request allocates no string for them.
/// </summary>
internal sealed class Http1StringCache
{
    private readonly string?[] _values = new string?[Http1KnownHeaders.Count];
    private string? _target;

    /// <summary>The value of the known field <paramref name="index"/> as a string, the previous one when the bytes match.</summary>
    public string Value(int index, ReadOnlySpan<byte> bytes) => Reuse(ref _values[index], bytes);

    /// <summary>The request target as a string, the previous one when the bytes match.</summary>
    public string Target(ReadOnlySpan<byte> bytes) => Reuse(ref _target, bytes);

    private static string Reuse(ref string? previous, ReadOnlySpan<byte> bytes)
    {
        if (previous is not null && previous.Length == bytes.Length && Ascii.Equals(bytes, previous)) return previous;
        return previous = Encoding.ASCII.GetString(bytes);
    }
}
