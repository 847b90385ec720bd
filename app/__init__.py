"""SIA: Servicio de Intercomunicación de Avisos."""
