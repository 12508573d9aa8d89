ALTER TABLE `applications` ADD `partner_api_enabled` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `applications` ADD `sso_targets` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `applications` ADD `version` integer DEFAULT 1 NOT NULL;--> statement-breakpoint
-- Existing SIMPLE_API apps keep their partner API; OIDC clients lose it (issue 9).
UPDATE `applications` SET `partner_api_enabled` = 1 WHERE `protocol_type` = 'SIMPLE_API';
