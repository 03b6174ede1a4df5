namespace ZcProxy.Core.Configuration;

/// <summary>
/// A valid configuration entry the machine cannot honour at start (a stream's address is in use). Its message is the
/// one line an operator reads, "file: $.json.path: what failed", as a failed start prints it.
/// </summary>
internal sealed class ConfigEntryException : Exception
{
    public ConfigEntryException() { }

    public ConfigEntryException(string message) : base(message) { }

    public ConfigEntryException(string message, Exception innerException) : base(message, innerException) { }

    public ConfigEntryException(ConfigError error, Exception? innerException = null) : base(error.ToString(), innerException) { }
}
