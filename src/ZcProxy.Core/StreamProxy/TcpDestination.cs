using System.Net;

namespace ZcProxy.Core.StreamProxy;

/// <summary>A stream destination's address, <c>tcp://HOST:PORT</c> (HOST an IP, IPv6 in brackets, or a DNS name resolved per connection).</summary>
internal sealed record TcpDestination(string Host, int Port)
{
    public const string Syntax = "tcp://HOST:PORT, e.g. \"tcp://10.0.0.5:5432\"";

    public static bool TryParse(string? address, out TcpDestination? destination)
    {
        destination = null;
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme != "tcp" || string.IsNullOrEmpty(uri.Host)
            || uri.IsDefaultPort || uri.Port <= 0 || uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.UserInfo.Length > 0
            || address!.TrimEnd('/').EndsWith(':'))
            return false;
        destination = new TcpDestination(uri.DnsSafeHost, uri.Port);
        return true;
    }

    /// <summary>The addresses to try, in order: the literal itself, or what DNS answers now.</summary>
    public async ValueTask<IPAddress[]> ResolveAsync(CancellationToken cancellationToken)
        => IPAddress.TryParse(Host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(Host, cancellationToken);

    public override string ToString() => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
